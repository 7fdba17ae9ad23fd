"""`python -m cli worker`: how `newsfeed serve` starts a jobs worker."""

from cli import main

main()
