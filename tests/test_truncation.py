from autograder.truncation import keep_ends


def test_keep_ends_keeps_the_head_and_the_tail_around_the_marker():
    assert keep_ends("abcdefghij", 3, 2, "|...|") == "abc|...|ij"
    assert keep_ends(b"abcdefghij", 4, 0, b"~") == b"abcd~"
    assert keep_ends("abcdefghij", 0, 1, "<") == "<j"
