Feature: Headache days derived from the diary
  As the trial's investigator I want the outcomes derived from the diary exactly as the
  protocol defines them: a headache day is a headache of at least 4 hours or any
  headache treated with acute medication; each 28-day window is prorated to 28 days when
  at least 21 of its days are recorded, and is missing otherwise; the change is measured
  against the baseline, the 28 days before randomization. Nobody sees a treatment arm.

  Background:
    Given the KetHead trial is running at "TWH" with sealed allocation lists
    And I am "tess", a coordinator at "TWH"
    And "TWH-001" was randomized on 30 March 2026 with headache on 20 of her 28 baseline days
    And the pharmacy prepared her infusion and she was infused on 31 March 2026

  Scenario: Headache days are counted as the protocol defines them
    Given it is 10 April 2026
    And "TWH-001" kept this diary:
      | date       | headache | severity | duration_hours | acute_medication |
      | 2026-04-01 | yes      | severe   | 6              | no               |
      | 2026-04-02 | yes      | mild     | 2              | yes              |
      | 2026-04-03 | yes      | mild     | 2              | no               |
      | 2026-04-04 | no       | none     | 0              | yes              |
      | 2026-04-05 | yes      | moderate | 4              | no               |
    When I look at the outcomes of "TWH-001"
    Then the window "D1-28" shows 9 days expected, 5 recorded, 3 headache days, 2 moderate or severe days and 2 acute-medication days
    And the window "D1-28" has no prorated headache days and no change from baseline

  Scenario: A window with enough days is prorated to 28 days and compared with baseline
    Given it is 30 April 2026
    And "TWH-001" kept her diary on 22 days from 1 April, with a headache of 5 hours on 11 of them
    When I look at the outcomes of "TWH-001"
    Then the window "BASELINE" shows 20 headache days per 28 days
    And the window "D1-28" shows 14.0 headache days per 28 days, a change of -6.0 from baseline
    And the window "D29-56" is missing, not zero

  Scenario: A window with too few days is missing
    Given it is 30 April 2026
    And "TWH-001" kept her diary on 20 days from 1 April, with a headache of 5 hours on 20 of them
    When I look at the outcomes of "TWH-001"
    Then the window "D1-28" shows 20 days recorded but no prorated headache days

  Scenario: The change from baseline compares headache days with headache days, whatever their severity
    # A trial statistician's check of the primary outcome against the protocol's definition:
    # mild headaches of 4 hours or more are headache days, and so is any headache treated with
    # acute medication; short untreated headaches are not, however severe.
    Given I screened "TWH-002" on 1 April, who consented the same day
    And "TWH-002" kept her baseline diary on 24 of the 28 days from 1 April, these days in turn:
      | days | headache | severity | duration_hours | acute_medication |
      | 7    | yes      | severe   | 8              | no               |
      | 5    | yes      | mild     | 6              | no               |
      | 3    | yes      | moderate | 2              | no               |
      | 2    | yes      | mild     | 1              | yes              |
      | 1    | yes      | moderate | 3              | yes              |
      | 6    | no       | none     | 0              | no               |
    And "TWH-002" was randomized on 29 April, and infused the same day
    And it is 28 May 2026
    And "TWH-002" kept her diary on 28 days from 30 April, with a headache of 5 hours on 9 of them
    When I look at the outcomes of "TWH-002"
    Then the window "BASELINE" shows 28 days expected, 24 recorded, 15 headache days, 11 moderate or severe days and 3 acute-medication days
    And the window "BASELINE" shows 17.5 headache days per 28 days
    And the window "D1-28" shows 9.0 headache days per 28 days, a change of -8.5 from baseline
