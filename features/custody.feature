Feature: Custody of the allocation lists
  As the sponsor's quality auditor I need assurance that no single person can read the
  allocation. The keys that open the sealed lists are held only by custodians whom a second
  person approved after checking the custodian's own key with them; nobody approves
  themselves; the trial admin, who creates every account, can neither approve a custodian
  nor reset a custodian's password; and every step, refused ones included, is in the audit
  trail.

  Background:
    Given a trial whose admin "alice" added the investigator "iris" and the pharmacists "phil" and "pia", who each activated their own account

  Scenario: The lists are sealed only for a custodian a second person approved
    When the admin tries to seal the allocation lists
    Then the admin is refused: "no approved pharmacist"
    When the investigator "iris" approves "phil" after checking the key fingerprint he reads out to her
    And the admin seals the allocation lists
    Then "phil" holds the key of every list and "pia" holds none
    And the audit trail shows that "iris" approved "phil"

  Scenario: A custodian approved after sealing receives the keys from the custodian who approves her
    Given "iris" approved "phil" and the allocation lists are sealed
    When "phil" approves "pia" after checking the key fingerprint she reads out to him
    Then "pia" holds the key of every list
    And the audit trail shows that "phil" approved "pia"

  Scenario Outline: Nobody approves themselves, and an admin approves nobody
    When "<who>" tries to approve "pia"
    Then they are refused: "<why>"
    And "pia" is not approved, and the audit trail shows that "<who>" was refused

    Examples:
      | who   | why                         |
      | pia   | nobody approves themselves  |
      | alice | cannot approve custodians   |

  Scenario: An account someone else activated is not approved by mistake
    When the investigator "iris" tries to approve "phil" with a fingerprint that is not the one of his account's key
    Then they are refused: "is not that of the key"
    And "phil" is not approved, and the audit trail shows that "iris" was refused

  Scenario: The admin cannot reset a custodian's password
    Given "iris" approved "phil" and the allocation lists are sealed
    When the admin tries to issue "phil" a new enrolment code
    Then the admin is refused: "only they can change it"
    And "phil" still signs in with his own password

  Scenario: After a password change an old copy of the key opens nothing new
    Given "iris" approved "phil" and the allocation lists are sealed
    And someone kept a copy of the database
    When "phil" changes his password and the admin extends the "TWH-CM" list
    Then the key in the copy, with the old password, opens none of the list keys "phil" now holds
