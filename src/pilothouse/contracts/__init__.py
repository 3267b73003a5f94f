"""Consumer contracts: what a team relies on in a prompt's or route's output, verified
on exact candidates, and the promotion gate that holds protected labels and releases to
them (docs/contracts.md)."""
