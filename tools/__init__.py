"""Post-processing: checkers that read what LoadGen wrote."""
