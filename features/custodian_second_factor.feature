Feature: A custodian's password alone does not open the allocation
  As the sponsor's quality auditor I must be able to rely on this: whoever learns an
  unblinding custodian's password (seen over a shoulder, reused elsewhere) still cannot sign
  in as that custodian and read arms. Where the protocol says so, each custodian also proves
  they hold their own phone: a six-digit code from an authenticator app, new every 30
  seconds, accepted once. The admin cannot take the phone off an account; a lost phone
  needs a second custodian, and the record says who and why.

  Background:
    Given a trial whose protocol asks custodians for a second factor
    And pharmacist "pia" has enrolled her phone

  Scenario: Her password alone is refused, and the refusal is on the record
    When someone signs in as "pia" with her password and no code
    Then the sign-in is refused with "wrong user name, password or code"
    And the audit trail records a failed sign-in for "pia" naming the "second factor"

  Scenario: A code seen over her shoulder cannot be used again
    When "pia" signs in with her password and the code her phone shows
    And someone signs in as "pia" with her password and that same code
    Then the sign-in is refused with "wrong user name, password or code"

  Scenario: Nobody learns from a refusal who has a phone enrolled
    When someone tries a wrong password for "pia", for coordinator "cora" and for the unknown name "mallory"
    Then each is refused with the same words, "wrong user name, password or code"

  Scenario: The database does not give the secret away
    Then neither her account's row nor any audit event holds the secret her phone holds

  Scenario: The admin cannot take her phone off her account, a second custodian can
    When the admin tries to reset the second factor of "pia"
    Then it is refused, and the refusal is on the record
    When a second custodian "phil" resets it, saying "phone lost"
    Then the record names "phil" and "phone lost"
    And the audit trail still verifies
