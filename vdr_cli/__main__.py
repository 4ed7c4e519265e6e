from vdr_cli.cli.main import run

run()
