from .helpers import ALGORITHMS, Limiter, rule


def test_every_algorithm_allows_then_denies(coord):
    rl = Limiter(coord.target)
    for algo in ALGORITHMS:
        r = rule(2, 3600, algo)
        assert [rl.one(f"k{algo}", r).allowed for _ in range(3)] == [True, True, False]
