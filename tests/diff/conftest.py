"""One simulator and one Pilothouse server (both in this process, on loopback ports) for
every diff test, with the triage prompt's versions and the orders prompt pushed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from diff_harness import ORDERS_TOOLS, TICKETS, TRIAGE, Pushed, chat_prompt, stack, write_cases


@pytest.fixture(scope="session")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    data_dir = tmp_path_factory.mktemp("diff-server")
    with stack(data_dir) as running:
        triage = {
            wording: running.push("triage", chat_prompt(system))
            for wording, system in TRIAGE.items()
        }
        orders = {
            wording: running.push("orders", chat_prompt(system, tools=ORDERS_TOOLS))
            for wording, system in (
                ("number", "You answer order questions. Look orders up by number."),
                ("email", "You answer order questions. Look orders up by number and email."),
                ("search", "You answer order questions. Search orders by text."),
            )
        }
        tickets = write_cases(data_dir / "tickets.jsonl", TICKETS)
        yield Pushed(running, triage, orders, tickets)
