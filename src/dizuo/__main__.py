from dizuo.cli import main

main()
