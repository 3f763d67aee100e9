"""``python -m batchfetch``: the same as the ``batchfetch`` command."""
from batchfetch.cli import main

if __name__ == "__main__":
    main(prog_name="batchfetch")
