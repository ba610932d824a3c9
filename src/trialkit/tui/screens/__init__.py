"""Full screens: sign-in, home, lock, and (later) one per role journey."""
