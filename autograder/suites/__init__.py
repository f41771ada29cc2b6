"""The grading suites: pytest files run in the trusted process by `autograder.grading.grade`.

Tests reach student code only through probe calls (`observe`), and judge the observations here.
Markers give each test its points, visibility ("after_due_date" = hidden suite) and number.
"""
