from medcolor.cli.app import main

main()
