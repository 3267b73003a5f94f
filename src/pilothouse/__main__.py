from pilothouse.cli import main

main()
