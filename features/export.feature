Feature: Exporting the outcomes for analysis
  As the trial's investigator I want the outcomes and the diary as CSV files, with a data
  dictionary and the checksum of every file beside them, so the statisticians can analyse
  exactly what the trial recorded. While the trial runs the exports are blinded. Once the
  database is locked nothing clinical can change any more, and only an unblinding
  custodian, with their password, can export which treatment each participant received.

  Background:
    Given the KetHead trial has randomized participants who kept their diaries
    And "ivan" is an investigator who holds the unblinding keys
    And "iris" is an investigator who does not

  Scenario: Before the lock an export has no treatment arm
    When "ivan" exports the outcomes to "outcomes.csv"
    Then "outcomes.csv" has exactly the columns of the outcomes table
    And nothing in "outcomes.csv" names a treatment arm
    And a data dictionary and a manifest with the checksum of every file lie beside it
    And the audit trail records the export with the checksum of every file

  Scenario: Before the lock even a custodian cannot export the arms
    When "ivan" exports the outcomes with the arms to "unblinded.csv"
    Then "ivan" is refused: "the unblinded export is refused: the database is not locked yet (an investigator locks it)"
    And no file "unblinded.csv" was written
    And the audit trail records the refusal

  Scenario: After the lock a custodian's export has the arm
    Given "iris" has locked the database
    When "ivan" exports the outcomes with the arms to "unblinded.csv"
    Then "unblinded.csv" has the columns of the outcomes table and "arm" last
    And each participant's arm in "unblinded.csv" is the one sealed in their envelope

  Scenario: After the lock an investigator who is not a custodian is refused the arms
    Given "iris" has locked the database
    When "iris" exports the outcomes with the arms to "unblinded.csv"
    Then "iris" is refused: "the unblinded export is refused: iris is not an unblinding custodian"
    And no file "unblinded.csv" was written

  Scenario: After the lock the diary cannot change
    Given "iris" has locked the database
    When the coordinator "cora" records a day without headache for "TWH-001"
    Then "cora" is refused with a message ending "by iris: clinical data can no longer change"

  Scenario: The participants' baseline covariates for the analysis
    When "iris" exports the participants to "participants.csv"
    Then "participants.csv" has one row for each person screened
    And each row gives the age, sex, weight, headache type and site recorded at screening
    And each row gives the date of each stage the participant reached
    And nothing in "participants.csv" names a treatment arm

  Scenario: Even after the lock the participants export has no arm
    Given "iris" has locked the database
    When "ivan" exports the participants with the arms to "participants.csv"
    Then "ivan" is told: "the participants export is always blinded: join it on participant_id to an unblinded outcomes export for the arm"
    And no file "participants.csv" was written
