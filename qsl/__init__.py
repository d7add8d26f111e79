"""Data in: the IMDB reviews, their preprocessing into token ids, and the LoadGen QSL."""
