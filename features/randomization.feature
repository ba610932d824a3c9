Feature: Sealed randomization
  The trial admin seals one allocation list per stratum before the first
  participant is randomized, and sees how many envelopes each stratum has, never
  what is in them. The coordinator randomizes a consented participant who has kept
  four weeks of baseline diary, and gets a randomization number and a label code for
  the pharmacy, never the treatment.

  Background:
    Given the KetHead trial is running with the pharmacist "phil"
    And the coordinator "tess" works at "TWH"

  Rule: The admin seals the lists and sees counts only

    Scenario: The admin seals the allocation lists
      When the admin seals 5 envelopes for each stratum
      Then the admin is shown 5 envelopes for each of the strata "TWH-CM, TWH-CDH, SHS-CM, SHS-CDH"
      And the admin is shown nothing but those counts and the fingerprint of the signing key
      And the list status shows 5 sealed, 0 used and 5 left in every stratum
      And checking the lists finds them intact

  Rule: Randomizing gives a number and a label code, never the treatment

    Background:
      Given the admin has sealed 2 envelopes for each stratum

    Scenario: The coordinator randomizes a consented participant
      Given "TWH-001" has been screened eligible, with chronic migraine, has consented and has kept her baseline diary
      When the coordinator randomizes "TWH-001"
      Then she is given the randomization number "R0001" and a label code
      And nothing she is shown names a treatment
      And the list status shows 1 of the 2 envelopes of "TWH-CM" used

    Scenario: A participant who is not eligible cannot be randomized
      Given "TWH-001" has been screened, aged 16, and is not eligible
      When the coordinator randomizes "TWH-001"
      Then she is refused: "TWH-001 is not eligible (failed I1_age)"
      And no envelope has been used

    Scenario: A participant cannot be randomized twice
      Given "TWH-001" has been screened eligible, with chronic migraine, has consented and has kept her baseline diary
      And the coordinator has randomized "TWH-001"
      When the coordinator randomizes "TWH-001" again
      Then she is given the same randomization number and label code as the first time
      And she is told that no envelope was used
      And the list status shows 1 of the 2 envelopes of "TWH-CM" used

    Scenario: A stratum that has run out of envelopes refuses
      Given 2 participants with chronic migraine have been randomized at "TWH"
      And "TWH-003" has been screened eligible, with chronic migraine, has consented and has kept her baseline diary
      When the coordinator randomizes "TWH-003"
      Then she is refused, told that the stratum "TWH-CM" has no sealed envelope left
      And "TWH-003" has no randomization number
      And the admin sees the stratum "TWH-CM" as exhausted
      And no other stratum has used an envelope

  Rule: Any change to a sealed envelope is detected

    Scenario: A changed envelope fails verification
      Given the admin has sealed 4 envelopes for each stratum
      And checking the lists finds them intact
      When someone changes one byte of envelope 3 of the "TWH-CM" list directly in the database
      Then checking the lists fails, naming the "TWH-CM" list and its envelope 3
      And the other lists are still intact
      And checking the audit trail fails too, naming the "TWH-CM" list
