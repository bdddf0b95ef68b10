from lineage_faust.cli.main import main

main()
