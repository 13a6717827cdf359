"""The command-line interface: renders what the core decides. The core never imports this."""
