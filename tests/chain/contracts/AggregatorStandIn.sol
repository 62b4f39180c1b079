// SPDX-License-Identifier: MIT
pragma solidity ^0.8.9;

/// Stands in for a Chainlink price feed (AggregatorV3Interface), which the npm package does not ship.
/// The test sets each round's answer and update time, and can make latestRoundData revert.
contract AggregatorStandIn {
    uint8 public decimals;
    string public description;
    uint256 public constant version = 4;
    bool public broken;

    uint80 private roundId;
    int256 private answer;
    uint256 private updatedAt;

    constructor(uint8 decimals_, string memory description_) {
        decimals = decimals_;
        description = description_;
    }

    function setAnswer(int256 answer_, uint256 updatedAt_) external {
        roundId += 1;
        answer = answer_;
        updatedAt = updatedAt_;
    }

    function setBroken(bool broken_) external {
        broken = broken_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        require(!broken, "feed unavailable");
        return (roundId, answer, updatedAt, updatedAt, roundId);
    }
}
