from datacarousel.cli import app

app()
