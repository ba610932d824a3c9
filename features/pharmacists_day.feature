Feature: A pharmacist's day
  A research pharmacist does her day in the terminal screens, without the command line:
  the queue of randomized participants, the envelope, the checked preparation and its
  labels, a reprint, and the sites she serves. What she sees of a label is what the label
  says; labels go to the folder the pharmacy set.

  Background:
    Given the KetHead trial with the coordinator "tess" at TWH and the pharmacists "phil" and "pia"
    And the labels folder is set for the pharmacy
    And the coordinator has randomized a participant weighing 82.5 kg

  Scenario: Prepare, label and reprint
    When the pharmacist opens the queue
    Then she sees the participant weighing 82.5 kg waiting
    When the pharmacist prepares the infusion
    Then the labels are saved in the labels folder
    And the label preview says "KETAMINE OR PLACEBO" and "Original print"
    And the label preview shows every word the labels' PDF prints
    When she prints the labels again
    Then the label preview now says "REPRINT 1"
    And her home names the sites she serves as all of them, SHS and TWH
    And nothing she saw outside the envelope names a treatment
