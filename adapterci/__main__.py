from adapterci.cli import main

main()
