"""The issued report's signatures, as Vietnamese e-government signs documents (Decree 30/2020,
Art. 13-15 and Appendix I): the director's PAdES signature when the report is approved, then
the register's number and date, then the issuing agency's signature shown as its seal; and
their verification against the configured trust roots, with pyHanko.

Signers sit behind one interface whatever holds the key: a PKCS#12 file (development, tests),
a PKCS#11 token or HSM, or a remote service the signer confirms on the phone."""
