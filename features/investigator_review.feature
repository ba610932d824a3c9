Feature: An investigator reviews enrolment and CONSORT
  The investigator follows the trial without learning any treatment: how many people each
  site has randomized against its target, day by day up to today, the CONSORT 2010 flow
  counted from the record, and every emergency unblinding with who did it, when and why.

  Background:
    Given the KetHead trial has screened eight people, randomized six and infused four
    And "iris" is an investigator who holds no unblinding key

  Scenario: Enrolment per site against the target, up to today
    When the investigator reads the trial's status
    Then the site "TWH" has randomized 5 of its target of 28
    And the site "SHS" has randomized 1 of its target of 28
    And the enrolment curve rises in one step to 6 on the day of randomization
    And the enrolment curve runs to today with whole-number ticks up to at least 56

  Scenario: CONSORT 2010 boxes from the record, arms pooled
    When the investigator reads the trial's status
    Then the CONSORT flow shows 8 assessed for eligibility and 2 excluded
    And of the excluded, 1 did not meet the eligibility criteria and 1 is not yet randomized
    And 6 were randomized, 4 received the infusion and 2 did not
    And of those not infused, 1 withdrew before it and 1 is still waiting for it
    And 6 are analysed by intention to treat, 4 of them without a primary outcome
    And nothing in the status names a treatment

  Scenario: The emergency-unblinding report names no treatment
    When the investigator reads the emergency-unblinding report
    Then she sees that "ivan" unblinded "TWH-003" because "suspected serious adverse reaction"
    And nothing in the report names a treatment
