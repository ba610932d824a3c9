Feature: Enrolling participants at my site
  As a site coordinator I screen the people referred to the KetHead study, keep a
  record of who is eligible and who is not, and record their informed consent. I
  work only with my own site's participants.

  Background:
    Given the KetHead trial is running at the sites "TWH" and "SHS"
    And I am "tess", a coordinator at "TWH"

  Rule: Screening records everyone, eligible or not

    Scenario: I screen a participant who meets every criterion
      When I screen a 40-year-old woman weighing 70 kg with chronic migraine at "TWH" who meets every criterion
      Then she is given the participant id "TWH-001"
      And she is eligible, in the stratum "TWH-CM"
      And my list of participants shows "TWH-001" as "eligible"

    Scenario: Someone who does not meet a criterion is kept as a screen failure
      When I screen someone at "TWH" who is 17 years old and answers yes to "E14_ptsd"
      Then she is given the participant id "TWH-001"
      But she is not eligible, because she does not meet "I1_age, E14_ptsd"
      And my list of participants shows "TWH-001" as "ineligible"

    Scenario: A typing mistake is refused and nothing is recorded
      When I screen someone at "TWH" who is 200 years old
      Then I am told the input is wrong: "age 200 is not plausible (0-120)"
      And no participant has been recorded

  Rule: Consent is recorded for an eligible participant

    Scenario: I record a participant's consent
      Given I have screened "TWH-001", who is eligible
      When I record that "TWH-001" consented today on form version "2.0"
      Then my list of participants shows "TWH-001" as "consented"

    Scenario: Someone who is not eligible cannot give consent
      Given I have screened "TWH-001", who is 16 years old
      When I record that "TWH-001" consented today on form version "2.0"
      Then I am refused: "TWH-001 is not eligible (failed I1_age)"
      And my list of participants shows "TWH-001" as "ineligible"

  Rule: I only ever see and touch my own site's participants

    Scenario: I cannot touch a participant of another site
      Given "cora", a coordinator at "SHS", has screened a participant at "SHS"
      And I have screened "TWH-001", who is eligible
      When I try to record the consent of "SHS-001"
      Then I am refused: "tess works at TWH, not at SHS"
      And "SHS-001" is just as "cora" left her
      And my list of participants holds "TWH-001" only

  Rule: A participant has one status, and every view says it

    Scenario: A withdrawn participant is counted the same everywhere
      Given I have screened "TWH-001", who is eligible
      And "TWH-001" has consented
      When I withdraw "TWH-001" because "she moved away"
      Then my list of participants shows "TWH-001" as "withdrawn"
      And her outcomes show her as "withdrawn"
      And the status report counts 1 withdrawn at "TWH" and 1 withdrawn in all
      And the CONSORT flow counts 1 who withdrew before randomization and 0 after it
      And the dashboard's CONSORT counts 1 withdrawn

    Scenario: A screen failure cannot be withdrawn, having never entered the trial
      Given I have screened "TWH-001", who is 16 years old
      When I withdraw "TWH-001" because "changed her mind"
      Then I am refused: "TWH-001 is a screen failure: there is no participation to withdraw"
      And my list of participants shows "TWH-001" as "ineligible"
      And the status report counts 0 withdrawn at "TWH" and 0 withdrawn in all
