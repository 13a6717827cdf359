from drbootstrap.cli.main import main

main()
