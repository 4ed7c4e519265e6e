from vdr_cli.cli.entry import run

run()
