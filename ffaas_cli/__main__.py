"""`python -m ffaas_cli`: the same as the `ffaas` console script."""

from ffaas_cli.main import run

run()
