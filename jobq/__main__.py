from jobq.cli.main import main

main()
