from callmeter.cli import app

app()
