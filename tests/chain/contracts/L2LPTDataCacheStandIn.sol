// SPDX-License-Identifier: MIT
pragma solidity ^0.8.9;

/// Stands in for Livepeer's L2LPTDataCache, which the npm package does not ship:
/// the Minter adds l1CirculatingSupply() to the L2 token supply; a test chain has none.
contract L2LPTDataCacheStandIn {
    function l1CirculatingSupply() external pure returns (uint256) {
        return 0;
    }
}
