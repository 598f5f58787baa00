"""The posts service's library: wiki pages, media items and their contents, views and downloads."""
