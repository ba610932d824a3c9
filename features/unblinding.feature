Feature: Emergency unblinding
  As an investigator who is an unblinding custodian, when a participant's safety depends
  on it I can learn which treatment they received: one participant at a time, for a reason
  I give, after typing my password again. Only I see the treatment; everyone sees that the
  participant was unblinded, and the monitor sees who did it and why.

  Background:
    Given the KetHead trial is running with the custodian investigator "ivan" and the monitor "mona"
    And "TWH-002" has been randomized and the pharmacy has prepared the infusion from the lots "S2311-042" and "S2311-043"
    And I am the investigator "ivan"

  Scenario: I unblind a participant in an emergency
    When I unblind "TWH-002" because "suspected serious adverse reaction", typing my password again
    Then I am shown that "TWH-002" received placebo, prepared from the lots "S2311-042" and "S2311-043"
    And the coordinator's list of participants flags "TWH-002" as unblinded in an emergency
    And no other participant is flagged
    And the monitor "mona" sees that "ivan" unblinded "TWH-002" because "suspected serious adverse reaction"
    And nothing the monitor or the coordinator sees names the treatment

  Scenario: An emergency unblinding needs a reason
    When I unblind "TWH-002" because "", typing my password again
    Then I am told the input is wrong: "an emergency unblinding needs a reason"
    And "TWH-002" is not flagged as unblinded and nothing has been recorded

  Scenario: A wrong password unblinds nothing
    When I unblind "TWH-002" because "suspected serious adverse reaction", typing the password "guess-again-123"
    Then I am refused: "wrong password for the custodian key"
    And "TWH-002" is not flagged as unblinded and nothing has been recorded but the refusal

  Scenario Outline: Only an unblinding custodian can unblind
    When "<who>" tries to unblind "TWH-002" because "curious"
    Then they are refused: "<who> (<role>) lacks the permission to emergency-unblind"
    And the audit trail shows that "<who>" was refused
    And "TWH-002" is not flagged as unblinded

    Examples:
      | who   | role         |
      | iris  | investigator |
      | cora  | coordinator  |
      | mona  | monitor      |
      | alice | admin        |

  Scenario: The research pharmacist can unblind too
    When the pharmacist "phil" unblinds "TWH-002" because "suspected overdose"
    Then he is shown that "TWH-002" received placebo
    And the coordinator's list of participants flags "TWH-002" as unblinded in an emergency
