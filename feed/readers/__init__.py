"""Each reader's state: follows, reading history, events, activity, popularity, tokens."""
