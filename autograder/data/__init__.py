"""Data readers (real STL-10 and Flickr8k formats) and the offline synthetic stand-in data."""
