from transfergrid.cli.app import main

main()
