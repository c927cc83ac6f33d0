"""Data Carousel: batch analyses over the Terra BasicFusion archive kept in S3 Glacier Deep Archive."""

__version__ = "0.1.0"
