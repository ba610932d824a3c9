Feature: A coordinator's day
  A study coordinator at Toronto Western Hospital does her whole day in the terminal
  screens, without the command line: she screens and consents a participant, brings in
  the baseline diary from a file, randomizes, plans and records the infusion, brings in
  the first month's diary and reads the outcomes. She is blinded: nothing she sees names
  a treatment.

  Background:
    Given the KetHead trial with the coordinator "tess" at TWH and the pharmacists "phil" and "pia"

  Scenario: From screening to the first month's outcomes
    When the coordinator screens an eligible participant and records their consent
    And 28 days later she imports a baseline diary of 28 days with 17 headache days
    And she randomizes the participant and plans the infusion for today
    Then she cannot record the infusion yet, because the pharmacy has not prepared it
    When the pharmacist prepares the infusion
    And the coordinator records the infusion
    And 30 days later she imports 21 days of the first window with 7 headache days
    Then the outcomes show 17.0 headache days per 28 days at baseline
    And the outcomes show 9.3 headache days per 28 days in D1-28, a change of -7.7
    And nothing she saw names a treatment

  Scenario: A diary file with bad lines is refused whole
    When the coordinator screens an eligible participant and records their consent
    And 28 days later she imports a diary file whose line 3 has no real date and whose line 4 names an unknown participant
    Then she is told that the file has 2 problems and nothing was imported
    And she sees the problems of lines 3 and 4
    And the participant's diary is still empty
