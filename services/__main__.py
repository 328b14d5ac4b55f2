"""`python -m services` is the `discarr` command."""
from services.cli import main

main(prog_name="discarr")
