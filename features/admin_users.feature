Feature: An admin adds a user and hands over the enrolment code
  The admin manages the trial's accounts on the users screen. A new user gets a one-time
  enrolment code, shown to the admin once, which the admin hands over out of band; the new
  user sets their own password with it, so nobody else ever knows it. Someone who leaves
  is disabled, not deleted: what they recorded stays theirs.

  Background:
    Given the KetHead trial with its admin "alice"

  Scenario: The admin adds a coordinator and hands over her enrolment code
    When the admin adds the coordinator "nina" at "TWH" on the users screen
    Then the screen shows nina's one-time enrolment code with "hand this code over out of band"
    And the users screen lists "nina" as "awaiting enrolment"
    When "nina" sets her own password with that code
    Then "nina" can sign in
    And the code does not work a second time
    And the audit trail records that "alice" added "nina", without the code

  Scenario: The admin disables a coordinator who left, and enables her again
    Given the coordinator "cora" works at "TWH"
    When the admin disables "cora" on the users screen because "left the study team"
    Then "cora" cannot sign in
    And the audit trail records that "alice" disabled "cora" because "left the study team"
    When the admin enables "cora" on the users screen
    Then "cora" can sign in
