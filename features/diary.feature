Feature: Keeping the headache diary
  As a site coordinator I enter each participant's headache diary, one day at a time or
  a whole paper diary at once from a spreadsheet. A day I have entered is never
  overwritten: a correction needs a reason and the old entry stays in the history.
  Randomization waits until the four weeks of baseline diary show the headaches the
  protocol asks for.

  Background:
    Given the KetHead trial is running at "TWH" with sealed allocation lists
    And I am "tess", a coordinator at "TWH"
    And I screened "TWH-001" on 2 March 2026, who consented the same day

  Rule: A diary day is entered once; a correction keeps the history

    Scenario: I enter a day and correct it later, giving a reason
      Given it is 10 March 2026
      When I enter for "TWH-001" on 9 March: a moderate headache of 3 hours, no acute medication
      Then the diary of "TWH-001" for 9 March shows a moderate headache of 3 hours
      And 9 March is not counted as a headache day
      When I enter for "TWH-001" on 9 March: a moderate headache of 5 hours, no acute medication, because "the participant misread her watch"
      Then the diary of "TWH-001" for 9 March shows a moderate headache of 5 hours
      And 9 March is counted as a headache day
      And the history of "TWH-001" for 9 March shows the 3 hours entered first, no longer current, and the 5 hours entered by "tess" with the reason "the participant misread her watch"

    Scenario: Entering a different value for a day without a reason is refused
      Given it is 10 March 2026
      And I have entered for "TWH-001" on 9 March: no headache
      When I enter for "TWH-001" on 9 March: a mild headache of 2 hours, no acute medication
      Then I am told the input is wrong: "TWH-001 already has a diary day for 2026-03-09 (version 1): a correction needs a reason"
      And the history of "TWH-001" for 9 March holds one entry

    Scenario: A day in the future is refused
      Given it is 10 March 2026
      When I enter for "TWH-001" on 11 March: no headache
      Then I am told the input is wrong: "TWH-001: date 2026-03-11 is in the future (today is 2026-03-10)"

  Rule: A diary file is imported whole or not at all

    Scenario: A file with mistakes is refused line by line and nothing is imported
      Given it is 10 March 2026
      When I import this diary file:
        | participant_id | date       | headache | severity | duration_hours | acute_medication |
        | TWH-001        | 2026-03-02 | yes      | severe   | 8              | yes              |
        | TWH-001        | 2026-03-03 | no       | mild     |                | no               |
        | TWH-002        | 2026-03-03 | no       |          |                | no               |
        | TWH-001        | 2026-03-04 | yes      | moderate | 26             | no               |
      Then the file is refused with these problems:
        | problem                                                                                  |
        | line 3: headache=no with severity 'mild': a day without headache has severity none |
        | line 4: unknown participant 'TWH-002'                                                    |
        | line 5: duration 26 h is outside 0-24 h                                                  |
      And no diary day of "TWH-001" has been recorded

  Rule: Randomization needs the protocol's baseline diary

    Scenario: A participant with too few diary days cannot be randomized
      Given it is 30 March 2026
      And "TWH-001" kept her diary on 20 of the 28 days before today, with headache on 20 of them
      When I randomize "TWH-001"
      Then I am refused: "TWH-001 cannot be randomized yet: the baseline diary (2026-03-02 to 2026-03-29) has 20 of 28 days recorded (at least 24 needed)"
      And "TWH-001" has no randomization number

    Scenario: A participant with too few headache days cannot be randomized
      Given it is 30 March 2026
      And "TWH-001" kept her diary on all 28 days before today, with headache on 14 of them
      When I randomize "TWH-001"
      Then I am refused: "TWH-001 cannot be randomized yet: the baseline diary (2026-03-02 to 2026-03-29) has 14 headache days (at least 15 needed)"

    Scenario: A participant with the baseline diary the protocol asks for is randomized
      Given it is 30 March 2026
      And "TWH-001" kept her diary on 24 of the 28 days before today, with headache on 15 of them
      When I randomize "TWH-001"
      Then she is given the randomization number "R0001"

  Rule: The diary starts at consent

    Scenario: No diary day is taken for someone who has not consented
      Given it is 10 March 2026
      And I screened "TWH-002" today, who has not consented yet
      When I enter for "TWH-002" on 10 March: no headache
      Then I am refused: "TWH-002 has not consented: the diary starts at consent"
      And no diary day of "TWH-002" has been recorded

    Scenario: Someone screened and consented today starts the diary today, with nothing yet due
      Given it is 10 March 2026
      And I screened "TWH-002" today, who consented the same day
      When I enter for "TWH-002" on 10 March: a mild headache of 5 hours, no acute medication
      Then the diary of "TWH-002" for 10 March shows a mild headache of 5 hours
      And the baseline of "TWH-002" runs from 10 March to 6 April, with 0 days due and 1 recorded

    Scenario: Randomization waits until the baseline can hold 24 days from consent
      Given it is 10 March 2026
      And I screened "TWH-002" today, who consented the same day
      And it is 30 March 2026
      And "TWH-002" kept her diary every day from 10 March to 29 March, with headache on 20 of them
      When I randomize "TWH-002"
      Then I am refused: "TWH-002 cannot be randomized yet: the baseline diary (2026-03-02 to 2026-03-29) has 20 of 28 days recorded (at least 24 needed; the diary starts at consent (2026-03-10), so 2026-04-03 is the earliest day to randomize)"
