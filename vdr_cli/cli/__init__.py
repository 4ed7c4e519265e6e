"""The command-line skin: one thin module per subcommand."""
