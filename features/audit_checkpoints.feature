Feature: An auditor proves the record was not truncated
  As the sponsor's quality auditor I cannot trust a record that whoever holds the database
  could shorten or rewrite, recomputing every hash. So at each visit, at every export and at
  the database lock, trialkit writes a signed checkpoint that I keep outside the database:
  how many events the audit trail held, the hash of the last one, when, and who signed it
  with their own key. Later I check the trail against every checkpoint I kept.

  Background:
    Given a trial whose monitor "mona" has activated her account and work has been recorded
    And "mona" wrote a signed checkpoint, which the auditor keeps outside the database

  Scenario: The trail still holds everything the checkpoint counted
    Then the trail verifies against the checkpoint, signed by "mona"

  Scenario: Events removed from the end of the trail are found
    When someone with write access to the database removes the last 2 events
    Then the trail alone still verifies
    But verifying it against the checkpoint fails: "were removed"

  Scenario: A rewritten trail is found even with every hash recomputed
    When someone with write access to the database deletes event 3, renumbers the rest, recomputes every hash and adds a forged event at the end
    Then the trail alone fails too: the recomputed events no longer match their authors' signatures
    And verifying it against the checkpoint fails: "no longer has the head hash"

  Scenario: A checkpoint edited to hide the end of the trail is found
    When someone lowers the count in the kept checkpoint to match a shortened trail
    Then verifying it against the checkpoint fails: "its signature does not hold"

  Scenario: Another trial's checkpoint is refused
    When the auditor brings a checkpoint that names the trial "MIGRAINE2"
    Then the checkpoint is refused as bad input: "is a checkpoint of trial 'MIGRAINE2'"
