"""MisrBlockBrightness: a research group's own Data Carousel analysis, written on the job SDK."""
