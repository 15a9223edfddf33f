from transship.cli.main import app

app()
