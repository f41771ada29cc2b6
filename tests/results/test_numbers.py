from autograder.results.numbers import component_of, within


def test_the_component_is_the_first_three_parts_of_a_number_or_name():
    assert component_of("7.2.2.3") == "7.2.2"
    assert component_of("7.1.5") == "7.1.5"
    assert component_of("7.1.5 report: Method I accuracy") == "7.1.5"
    assert component_of("7.1") is None
    assert component_of("pipeline, for information") is None


def test_a_number_lies_within_its_component_and_its_part_only():
    assert within("7.1.3.2", "7.1.3") and within("7.1.3.2", "7.1") and within("7.1.3", "7.1.3")
    assert not within("7.1.31", "7.1.3") and not within("7.1.3.2", "7.2")
