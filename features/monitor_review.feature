Feature: A monitor reviews the record
  A monitor checks that the trial's record is complete and intact: for any participant,
  every step from screening to the pharmacy and the diary, who did it, when and what
  changed; and that nobody has altered the audit trail. The monitor is blinded: the record
  never shows a treatment.

  Background:
    Given the KetHead trial is running with the monitor "mona"
    And the pharmacy has prepared the infusion of "TWH-001" from the lots "K2403-117" and "K2403-118"
    And the pharmacist "pia" has printed the labels of "TWH-001" again

  Scenario: The monitor reads one participant's whole history
    When the monitor reads the history of "TWH-001"
    Then she sees, in order: screening, consent, baseline diary, randomization, envelope opening, preparation, labels printed again
    And every step names who did it and when
    And nothing she sees names a treatment or a lot

  Scenario: Each event shows what it changed
    When the monitor reads the withdrawal of "TWH-005"
    Then she sees that "withdrawn" went from false to true
    And she sees that "withdrawal_reason" went from nothing to "moved away"
    And she sees no other field

  Scenario: Sign-ins are shown only when she asks for them
    When the monitor reads the audit trail
    Then she sees no sign-in
    When the monitor asks to see sign-ins too
    Then she sees the sign-ins of "phil"

  Scenario: The monitor verifies the audit trail
    When the monitor verifies the audit trail
    Then it is reported intact, with the number of events it holds

  Scenario: A coordinator may not read the audit trail
    When the coordinator "cora" tries to read the audit trail
    Then she is refused because she may not read the audit log
