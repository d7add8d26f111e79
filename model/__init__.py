"""The math: the Seq2CNN network, its weights, training and evaluation."""
