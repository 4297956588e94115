from psmesh.cli import main

main()
