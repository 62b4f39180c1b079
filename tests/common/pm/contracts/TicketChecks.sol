// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// The on-chain redemption checks of Livepeer's TicketBroker, and nothing else:
/// ticket hash (tight packing with 64 bytes of aux data), the creation round's
/// block hash, the recipientRand preimage, used tickets, the sender's
/// personal-sign signature (65 bytes, V of 27 or 28, low S) and the win check.
/// Funds, deposits and reserves are out of scope: the tests use this contract as
/// an independent judge of the tickets Baton accepts.
contract TicketChecks {
    struct Ticket {
        address recipient;
        address sender;
        uint256 faceValue;
        uint256 winProb;
        uint256 senderNonce;
        bytes32 recipientRandHash;
        bytes auxData;
    }

    uint256 private constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    uint256 public constant TICKET_VALIDITY_PERIOD = 2;

    uint256 public currentRound;
    mapping(uint256 => bytes32) public blockHashForRound;
    mapping(bytes32 => bool) public usedTickets;

    event WinningTicketRedeemed(
        address indexed sender,
        address indexed recipient,
        uint256 faceValue,
        uint256 winProb,
        uint256 senderNonce,
        uint256 recipientRand,
        bytes auxData
    );

    /// Stands in for RoundsManager: make `round` current and record its block hash.
    function setRound(uint256 round, bytes32 blockHash) external {
        currentRound = round;
        blockHashForRound[round] = blockHash;
    }

    function getTicketHash(Ticket calldata t) public pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(t.recipient, t.sender, t.faceValue, t.winProb, t.senderNonce, t.recipientRandHash, t.auxData)
        );
    }

    function redeemWinningTicket(Ticket calldata t, bytes calldata sig, uint256 recipientRand) external {
        bytes32 ticketHash = getTicketHash(t);
        require(t.recipient != address(0), "ticket recipient is null address");
        require(t.sender != address(0), "ticket sender is null address");
        requireValidAuxData(t.auxData);
        require(
            keccak256(abi.encodePacked(recipientRand)) == t.recipientRandHash,
            "recipientRand does not match recipientRandHash"
        );
        require(!usedTickets[ticketHash], "ticket is used");
        require(recoverPersonal(ticketHash, sig) == t.sender, "invalid signature over ticket hash");
        require(uint256(keccak256(abi.encodePacked(sig, recipientRand))) < t.winProb, "ticket did not win");

        usedTickets[ticketHash] = true;
        emit WinningTicketRedeemed(t.sender, t.recipient, t.faceValue, t.winProb, t.senderNonce, recipientRand, t.auxData);
    }

    function requireValidAuxData(bytes calldata auxData) internal view {
        require(auxData.length == 64, "invalid length for ticket auxData: must be 64 bytes");
        uint256 creationRound = uint256(bytes32(auxData[0:32]));
        bytes32 creationRoundBlockHash = bytes32(auxData[32:64]);
        bytes32 blockHash = blockHashForRound[creationRound];
        require(blockHash != bytes32(0), "ticket creationRound does not have a block hash");
        require(creationRoundBlockHash == blockHash, "ticket creationRoundBlockHash invalid for creationRound");
        require(creationRound + TICKET_VALIDITY_PERIOD > currentRound, "ticket is expired");
    }

    function recoverPersonal(bytes32 digest, bytes calldata sig) internal pure returns (address) {
        require(sig.length == 65, "INVALID_SIGNATURE_LENGTH");
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        require(uint256(s) <= HALF_N, "invalid signature 's' value");
        require(v == 27 || v == 28, "invalid signature 'v' value");
        bytes32 ethDigest = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", digest));
        address signer = ecrecover(ethDigest, v, r, s);
        require(signer != address(0), "invalid signature");
        return signer;
    }
}
