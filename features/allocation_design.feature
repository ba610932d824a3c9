Feature: The lists keep the protocol's design
  The protocol says how the allocation lists are made (KetHead: permuted blocks of 4
  or 6, 1:1). The lists hold whole blocks, so the balance the blocks promise holds
  however often a stratum is extended; sizes other than the protocol's are refused;
  after the database lock, a custodian can open the sealed procedure for the
  randomization report. A trial that does not stratify by site has one list per
  stratum that every site randomizes from.

  Rule: Extensions keep every block whole

    Scenario: A stratum extended ten times stays within the balance its blocks promise
      Given the KetHead trial is running with the pharmacist "phil"
      And the admin has sealed 13 envelopes for each stratum
      When the admin extends "TWH-CM" by 3 envelopes, ten times
      Then the list status shows 43 envelopes of "TWH-CM" released, and 13 in every other stratum
      And the pharmacist, reading every envelope of "TWH-CM" in order, never finds one arm more than 3 ahead of the other
      And checking the lists finds every list intact

  Rule: The protocol is the design

    Scenario: Block sizes other than the protocol's are refused
      Given the KetHead trial is running with the pharmacist "phil"
      When the admin seals 5 envelopes for each stratum with block sizes "2"
      Then the admin is told the block sizes differ from the protocol's "4, 6"
      And nothing is sealed

    Scenario: An extension with other block sizes is refused
      Given the KetHead trial is running with the pharmacist "phil"
      And the admin has sealed 5 envelopes for each stratum
      When the admin extends "TWH-CM" by 4 envelopes with block sizes "8,10"
      Then the admin is told the block sizes differ from the protocol's "4, 6"
      And the list status shows 5 envelopes of "TWH-CM" released, and 5 in every other stratum

    Scenario: After the lock, the pharmacist opens the sealed procedure
      Given the KetHead trial is running with the pharmacist "phil"
      And the admin has sealed 5 envelopes for each stratum
      And the investigator "ivan" has locked the database
      When the pharmacist "phil" opens the sealed procedure with her password
      Then she sees, for every stratum, blocks of 4 or 6 that follow one another from envelope 1 to the last
      And every block she sees holds as many envelopes of each arm
      And the audit trail records that "phil" opened the sealed procedure

    Scenario: Before the lock, nobody opens the sealed procedure
      Given the KetHead trial is running with the pharmacist "phil"
      And the admin has sealed 5 envelopes for each stratum
      When the pharmacist "phil" opens the sealed procedure with her password
      Then she is refused because the database is not locked yet
      And the audit trail records the refusal

  Rule: Without stratification by site, every site randomizes from one list per stratum

    Scenario: Coordinators of two sites randomize from the same list
      Given a KetHead trial that does not stratify by site, with the pharmacist "phil"
      And the coordinators "tess" at "TWH" and "sam" at "SHS"
      When the admin seals 4 envelopes for each stratum
      Then the admin is shown 4 envelopes for each of the strata "CM, CDH"
      When "tess" randomizes a participant with chronic migraine at "TWH" and "sam" one at "SHS"
      Then they are given the randomization numbers "R0001" and "R0002"
      And the list status shows 2 of the 4 envelopes of "CM" used
      And the pharmacist "phil" opens both envelopes, numbers 1 and 2 of the "CM" list
      And checking the lists and the audit trail finds them intact
