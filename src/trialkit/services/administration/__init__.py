"""The trial and its people: creating the database and the trial, users, sign-in and the second
factor, custody of the list keys, the database lock."""
