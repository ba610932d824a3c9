Feature: Recovering custody with the sponsor's recovery sheet
  As the sponsor's quality auditor I need assurance that the allocation can never be lost,
  and that recovering it is a deliberate, recorded act. When the trial is created a recovery
  key is made: its private half is printed once, as 24 words and a QR code, on a sheet for
  the sponsor's safe, and is stored nowhere. Every allocation list is sealed to it as well as
  to the approved custodians. If every custodian is gone, the sheet hands the lists to a newly
  approved custodian, and the audit trail records it. Verification notices a list whose keys
  or recovery wrapping have been removed.

  Background:
    Given the admin "alice" created the trial, which wrote the recovery sheet to a file for the sponsor's safe
    And the pharmacist "phil" was approved by the investigator "iris" and the allocation lists are sealed

  Scenario: Every list is sealed to the recovery key, and the words are kept nowhere else
    Then the recovery sheet lists 24 numbered words
    And the words on the sheet open every allocation list
    And the words appear nowhere in the trial database

  Scenario: When every custodian is gone the sheet restores custody
    Given "phil" has left the trial and the admin disabled his account
    And the new pharmacist "newt" activated his account
    When the investigator "iris" tries to approve "newt" on her word alone
    Then "iris" is refused: "approves only the first custodian"
    When "iris" restores custody to "newt" with the recovery sheet, after checking the key fingerprint he reads out
    Then "newt" is approved with the recovery sheet and holds the key of every list
    And the audit trail shows that "iris" restored custody to "newt" with the recovery sheet
    And the audit trail verifies

  Scenario: A recovery sheet of another trial restores nothing
    Given "phil" has left the trial and the admin disabled his account
    And the new pharmacist "newt" activated his account
    When "iris" tries to restore custody to "newt" with the recovery sheet of another trial
    Then "iris" is refused: "not the recovery sheet of this trial"
    And "newt" is still not approved and holds no list key, and the audit trail shows the refused attempt

  Scenario Outline: Removing what lets the lists be opened is detected
    When someone with write access to the database file <removes>
    Then the audit trail verification fails, naming <what>

    Examples:
      | removes                                      | what                         |
      | deletes every list key grant                 | a list no custodian can open |
      | deletes the recovery wrapping of one list    | the missing recovery wrapping |
