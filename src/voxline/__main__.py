from voxline.cli import app

app()
