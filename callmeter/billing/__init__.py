"""Pure billing logic: what a call costs, how far coins reach, how earnings split."""
